export { FolderWatcher } from "../../runner/folder-watcher.js";
