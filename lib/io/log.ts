export * from "../base/log.ts"; // TEMPORARY: removed once every import points at lib/base/log.ts
