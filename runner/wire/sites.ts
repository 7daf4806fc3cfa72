/**
 * A task that must run at a site carries the site in its identifier's name,
 * `Name:site`: runners at that site register `Name:site` for every task they
 * run (besides `Name`), so leasing, which matches identifiers, gives the task
 * to them alone, and nothing new is looked up per task.
 */
export const SITE_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;

/** The identifier name of task `name` bound to `site`. */
export function siteBoundName(name: string, site: string): string {
  return `${name}:${site}`;
}

/** A leased identifier name split into the task's name and its site ("" when not bound). */
export function splitSiteBound(name: string): { name: string; site: string } {
  const at = name.lastIndexOf(":");
  if (at <= 0 || !SITE_PATTERN.test(name.slice(at + 1))) return { name, site: "" };
  return { name: name.slice(0, at), site: name.slice(at + 1) };
}
