#!/usr/bin/env node
// The `sluice` command: runs the TypeScript CLI through tsx, so that task
// modules given to `sluice runner` may be TypeScript too.
import { register } from "tsx/esm/api";

register();
await import("../runner/cli/main.ts");
