/**
 * @module main
 * The dashboard: sign in with a token, then the pools overview or one pool's detail, chosen by the
 * URL's hash (`#/pools/<resource group>/<name>`), so views can be linked and reloaded.
 */

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';

import { signIn, signOut, storedToken, type SignedIn } from './auth.js';
import { Overview } from './overview.js';
import { PoolDetail } from './pool-detail.js';
import { SignIn } from './sign-in.js';
import './styles.css';

type Route = { view: 'overview' } | { view: 'pool'; resourceGroup: string; name: string };

function parseRoute(hash: string): Route {
  const match = /^#\/pools\/([^/]+)\/([^/]+)$/.exec(hash);
  return match?.[1] && match[2]
    ? { view: 'pool', resourceGroup: decodeURIComponent(match[1]), name: decodeURIComponent(match[2]) }
    : { view: 'overview' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function App() {
  const [auth, setAuth] = useState<SignedIn>();
  const [restoring, setRestoring] = useState(() => storedToken() !== null);
  const route = useRoute();

  useEffect(() => {
    const token = storedToken();
    if (token === null) return;
    signIn(token)
      .then(setAuth)
      .catch(() => signOut())
      .finally(() => setRestoring(false));
  }, []);

  if (restoring) return <p class="loading">Signing in…</p>;
  if (!auth) return <SignIn onSignedIn={setAuth} />;
  const leave = () => {
    signOut();
    setAuth(undefined);
  };
  return (
    <>
      <header class="topbar">
        <a class="brand" href="#/">
          Sandpool
        </a>
        <span class="who" data-testid="principal" title={auth.principal.roles.join(', ')}>
          {auth.principal.principal}
        </span>
        <button type="button" class="quiet" onClick={leave}>
          Sign out
        </button>
      </header>
      <main>
        {route.view === 'pool' ? (
          <PoolDetail auth={auth} resourceGroup={route.resourceGroup} name={route.name} />
        ) : (
          <Overview auth={auth} />
        )}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
