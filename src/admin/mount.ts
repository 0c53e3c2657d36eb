import type { Hono } from 'hono';

/**
 * The admin app's types, apart from `app.ts` so route modules can name them without importing
 * the app (which imports the OpenAPI document, which imports the routes' body schemas).
 */

export type AdminEnv = { Variables: { requestId: string } };
export type AdminApp = Hono<AdminEnv>;
/** A group of admin routes, mounted by the composition root. */
export type AdminMount = (app: AdminApp) => void;
