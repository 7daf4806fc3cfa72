/**
 * Loads a package the SDK lists as an optional peer dependency, on first use,
 * so that installing the SDK does not install it. A missing package becomes an
 * error that says what to install.
 */
export async function importOptional<T>(name: string, load: () => Promise<T>, purpose: string): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && String((e as Error).message).includes(name)) {
      throw new Error(`${purpose} needs the package ${name}: install it beside sluice (npm install ${name})`, { cause: e });
    }
    throw e;
  }
}
