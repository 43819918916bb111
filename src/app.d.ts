import type { AuthUser } from '$lib/server/services/auth.service';

declare global {
  namespace App {
    interface Locals {
      user: AuthUser | null;
      /** True when the request carries the maintenance token of the admin who started maintenance. */
      maintenanceAdmin: boolean;
    }
    interface Error {
      message: string;
    }
  }
}

export {};
