import { parseVersion, APP_VERSION } from '../version';

export class ServerInfoService {
  constructor(
    private readonly isOnboarded: () => Promise<boolean>,
    private readonly inMaintenance: () => boolean,
  ) {}

  version() {
    return parseVersion(APP_VERSION);
  }

  async config() {
    return { isOnboarded: await this.isOnboarded(), maintenanceMode: this.inMaintenance(), version: APP_VERSION };
  }
}
