/**
 * @module auth
 * The signed-in credential: kept in sessionStorage, so it leaves with the tab, and handed to a
 * {@link SandpoolClient} per resource group. The server at the page's own origin is the endpoint.
 */

import { SandpoolClient, type Principal } from '@sandpool/sdk';

const STORAGE_KEY = 'sandpool.token';

export interface SignedIn {
  token: string;
  principal: Principal;
  /** A client for the pools of one resource group (in the server's default subscription). */
  client(resourceGroup?: string): SandpoolClient;
}

const clientFor = (token: string, scope: { subscription?: string; resourceGroup?: string } = {}) =>
  new SandpoolClient({
    endpoint: window.location.origin,
    credential: token,
    ...scope,
    retry: { retries: 1 },
  });

/** Checks the token with the server; throws its ApiError (401) when it is not accepted. */
export async function signIn(token: string): Promise<SignedIn> {
  const principal = await clientFor(token).whoami();
  const subscription = principal.defaultSubscription;
  sessionStorage.setItem(STORAGE_KEY, token);
  const clients = new Map<string, SandpoolClient>();
  return {
    token,
    principal,
    client(resourceGroup = 'sandpool') {
      let client = clients.get(resourceGroup);
      if (!client) {
        client = clientFor(token, { subscription, resourceGroup });
        clients.set(resourceGroup, client);
      }
      return client;
    },
  };
}

export const storedToken = () => sessionStorage.getItem(STORAGE_KEY);

export function signOut(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Whether the principal's roles allow ending sessions of `pool` (SessionExecutor or Contributor). */
export function canStopSessions(principal: Principal, pool: string): boolean {
  return principal.roles.some((grant) => {
    const [role = '', scope = '*'] = grant.split(':');
    return (role === 'Contributor' || role === 'SessionExecutor') && (scope === '*' || scope === pool);
  });
}
