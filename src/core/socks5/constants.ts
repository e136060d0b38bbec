/**
 * RFC 1928 vocabulary: version, methods, commands, address types and reply codes.
 *
 * @module
 */

/** Protocol version byte of every SOCKS5 message. */
export const SOCKS_VERSION = 0x05;

/** Authentication methods (RFC 1928 §3). */
export const Method = {
  /** No authentication required. */
  NO_AUTH: 0x00,
  /**
   * Username/password (RFC 1929). Chosen when offered, only to read an attribution credential:
   * any credential is accepted, and an unknown one is simply unattributed.
   */
  USER_PASS: 0x02,
  /** The server accepts none of the methods the client listed. */
  NO_ACCEPTABLE: 0xff,
} as const;

/** Request commands (RFC 1928 §4). */
export const Command = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;

/** Address types (RFC 1928 §5). */
export const AddressType = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;

/** Version byte of the username/password sub-negotiation (RFC 1929 §2). */
export const USER_PASS_VERSION = 0x01;

/** Reply codes (RFC 1928 §6). */
export const Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;
