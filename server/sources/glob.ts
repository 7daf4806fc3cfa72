import picomatch from "picomatch";
import { invalid } from "../validation.js";

/**
 * Compiles a trigger glob with the meanings of Tilebox's table:
 *
 * | glob        | matches                                             |
 * |-------------|-----------------------------------------------------|
 * | `*.ext`     | files ending in .ext in the root folder             |
 * | `**\/*.ext` | files ending in .ext in any subfolder, not the root |
 * | `**.ext`    | files ending in .ext anywhere, the root included    |
 * | `folder/*`  | files directly in folder                            |
 * | `folder/**` | files anywhere under folder                         |
 * | `[a-z].txt` | a.txt, b.txt, ...                                   |
 *
 * picomatch does the matching. Two spellings are translated first: a `**`
 * that is a whole segment followed by more (`**\/`) stands for one or more
 * folders (picomatch allows none), and a `**` inside a segment (`**.ext`) is
 * the super-asterisk, which crosses "/" (picomatch reads it as `*`).
 */
export function compileGlob(glob: string, where = "glob"): (key: string) => boolean {
  if (glob.length === 0 || glob.length > 1024) throw invalid(`${where}: a glob must be 1 to 1024 characters`);
  if (glob.startsWith("/")) throw invalid(`${where}: glob ${JSON.stringify(glob)} starts with "/"; keys are relative to the location, e.g. "**.txt"`);
  const translated = glob
    .split("/")
    .map((segment, i, all) => {
      if (segment === "**") return i < all.length - 1 ? "*/**" : i > 0 ? "**/*" : "**";
      if (!segment.includes("**")) return segment;
      // Super-asterisk inside a segment: any characters, "/" included.
      const [head, ...rest] = segment.split("**");
      const tail = rest.join("*");
      return `{${head}*${tail},${head}*/**/*${tail}}`;
    })
    .join("/");
  let matcher: (key: string) => boolean;
  try {
    const scanned = picomatch.scan(translated, { parts: true });
    if (scanned.parts?.some((p) => p === "")) throw new Error("empty segment");
    matcher = picomatch(translated, { strictBrackets: true });
  } catch (e) {
    throw invalid(`${where}: glob ${JSON.stringify(glob)} is invalid (${(e as Error).message}); see the table of glob meanings in the README`);
  }
  return (key) => matcher(key);
}
