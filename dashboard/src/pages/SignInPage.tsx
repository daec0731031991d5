/** The sign-in page: shown with no key stored, and when the API refuses the stored key. */
import { useState } from 'react';
import { setApiKey, type SignInReason } from '../auth';

export function SignInPage({ reason }: { reason: SignInReason }) {
  const [key, setKey] = useState('');
  return (
    <div className="signin" data-testid="signin">
      <h1>Sign in to Weft</h1>
      {reason.kind === 'refused' ? (
        <div className="error-box" role="alert">
          <strong>The API key was refused.</strong>
          <div>{reason.message}</div>
          <div>
            Paste a valid key below. <code>weft dev</code> prints a sign-in link;{' '}
            <code>weft keys create</code> makes a new key.
          </div>
        </div>
      ) : (
        <p>
          The dashboard talks to this server&apos;s API with an API key. Open the link{' '}
          <code>weft dev</code> prints (<code>http://127.0.0.1:3700/#key=…</code>), or paste a key
          here. It is kept in this browser only.
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (key.trim()) setApiKey(key);
        }}
      >
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          placeholder="weft_dev_…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          autoFocus
        />
        <button type="submit" className="primary" disabled={!key.trim()}>
          Sign in
        </button>
      </form>
    </div>
  );
}
