export { FolderWatcher } from "../../runner/cli/folder-watcher.js";
