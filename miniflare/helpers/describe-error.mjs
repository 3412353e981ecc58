// A rejection as plain JSON, the same from Node and from inside workerd (client tests).
import { StreamError } from "../../client/dist/index.js";

export function describeError(e) {
  return {
    name: e?.name,
    code: e?.code,
    status: e?.status ?? null,
    message: e instanceof Error ? e.message : String(e),
    isStreamError: e instanceof StreamError,
  };
}
