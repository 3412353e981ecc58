// Hand-made JWTs for the access tests: any header, any claims, any key, so refusals
// (alg none, RS256, wrong secret, bad claims) can be built as an attacker would.
import crypto from "node:crypto";

const b64url = (text) => Buffer.from(text).toString("base64url");

/** `header.payload.signature`, HMAC-SHA256 over `header.payload` with `secret`. */
export function signJwt(claims, secret, header = { alg: "HS256", typ: "JWT" }) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${crypto.createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** An unsigned token (`alg: none`, empty signature). */
export function unsignedJwt(claims) {
  return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}.`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Claims valid for `ttl` seconds from now. */
export function claims({ ns, paths, ops, ttl = 300, ...extra }) {
  return { exp: nowSeconds() + ttl, ns, paths, ops, ...extra };
}
