/**
 * Method policy shared by the HTTP paths (limited mode).
 *
 * @module
 */

/** Methods limited mode lets through (behavior.md §3). */
export const LIMITED_MODE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);
