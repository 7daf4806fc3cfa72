export { onStopSignal } from "../runner/cli/signals.js";
