// Seedbed's version, in one place: the CLI, peer ids, the extension handshake's `v` and `created by` read it.

/** Seedbed's version. */
export const VERSION = "0.1.0";

/** Seedbed's two-letter client code in Azureus-style peer ids (`-SE0010-…`); unused by other clients. */
export const CLIENT_CODE = "SE";

/** How Seedbed names itself to peers (extension handshake `v`) and in torrents it creates (`created by`). */
export const CLIENT_NAME = `Seedbed ${VERSION}`;
