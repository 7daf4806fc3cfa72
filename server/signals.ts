export { onStopSignal } from "../runner/signals.js";
