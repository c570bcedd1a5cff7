/**
 * @module sign-in
 * The sign-in form: an API key or a token, checked against the server before it is kept.
 */

import { ApiError } from '@sandpool/sdk';
import { useState } from 'preact/hooks';

import { signIn, type SignedIn } from './auth.js';

export function SignIn({ onSignedIn }: { onSignedIn: (auth: SignedIn) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    signIn(token.trim())
      .then(onSignedIn)
      .catch((cause: unknown) =>
        setError(
          cause instanceof ApiError && cause.status === 401
            ? 'The server does not accept this token.'
            : `Cannot sign in: ${cause instanceof Error ? cause.message : String(cause)}`,
        ),
      )
      .finally(() => setBusy(false));
  };

  return (
    <main class="sign-in">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sandpool</h1>
        <p class="muted">Sign in with an API key or a token. It stays in this tab only.</p>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          Create one with <code>sandpool token create --roles Reader</code>.
        </p>
      </form>
    </main>
  );
}
