import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The random part of a new token's secret: 256 bits, base64url. */
export function newSecretPart(): string {
  return randomBytes(32).toString("base64url");
}

export function hashSecretPart(part: string): Buffer {
  return createHash("sha256").update(part, "utf8").digest();
}

/** The secret a caller presents: the token's id, a dot, the random part. */
export function secretOf(id: string, part: string): string {
  return `${id}.${part}`;
}

/** A presented secret split into the token's id and the random part; null when it has not that shape. */
export function parseSecret(secret: string): { id: string; part: string } | null {
  const match = /^([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{43})$/.exec(secret);
  return match ? { id: match[1], part: match[2] } : null;
}

/** Compares two secrets (or hashes) in constant time, whatever their lengths. */
export function sameSecret(a: Buffer | string, b: Buffer | string): boolean {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
}
