import { hash as digest, randomBytes } from 'node:crypto';

/** A fresh worker credential: 32 random bytes. */
export function newCredential(): string {
  return `mpdw_${randomBytes(32).toString('base64url')}`;
}

/**
 * Credentials are looked up by their SHA-256, never compared as plain strings. One-shot
 * `crypto.hash` (Node 20.12+): every authenticated request hashes its token, and a `Hash`
 * object per call costs several times as much.
 */
export function credentialHash(credential: string): string {
  return digest('sha256', credential, 'base64url');
}
