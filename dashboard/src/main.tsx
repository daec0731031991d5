/**
 * The Weft dashboard: a single-page app over the public HTTP API. Routing on the path (wouter),
 * data through react-query (cache, polling, retries), graphs with React Flow.
 */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode, useSyncExternalStore } from 'react';
import { createRoot } from 'react-dom/client';
import { Link, Route, Switch, useLocation } from 'wouter';
import { ApiError } from './api';
import { warmUpLayout } from './graph/layout';
import { consumeKeyFragment, signInReason, signOut, subscribeAuth } from './auth';
import { MetricsPage } from './pages/MetricsPage';
import { RunPage } from './pages/RunPage';
import { RunsPage } from './pages/RunsPage';
import { SchedulesPage } from './pages/SchedulesPage';
import { SignInPage } from './pages/SignInPage';
import { WaitingPage } from './pages/WaitingPage';
import { WorkflowPage, WorkflowsPage } from './pages/WorkflowsPage';
import './styles.css';

consumeKeyFragment();
warmUpLayout();

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A refused key or a missing thing does not get better by asking again.
      retry: (count, error) =>
        !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
      refetchOnWindowFocus: false,
    },
  },
});

let cachedReason = signInReason();
let cachedKey = JSON.stringify(cachedReason);
function authSnapshot() {
  const next = signInReason();
  const key = JSON.stringify(next);
  if (key !== cachedKey) {
    cachedKey = key;
    cachedReason = next;
  }
  return cachedReason;
}

function NavLink({ href, children }: { href: string; children: string }) {
  const [location] = useLocation();
  const active =
    href === '/'
      ? location === '/' || location.startsWith('/workflows')
      : location.startsWith(href);
  return (
    <Link
      href={href}
      className={active ? 'nav-link active' : 'nav-link'}
      aria-current={active ? 'page' : undefined}
    >
      {children}
    </Link>
  );
}

function App() {
  const reason = useSyncExternalStore(subscribeAuth, authSnapshot);
  if (reason) return <SignInPage reason={reason} />;
  return (
    <div className="app">
      <header className="topbar">
        <Link href="/" className="brand">
          Weft
        </Link>
        <nav aria-label="Main">
          <NavLink href="/">Workflows</NavLink>
          <NavLink href="/runs">Runs</NavLink>
          <NavLink href="/waiting">Waiting</NavLink>
          <NavLink href="/schedules">Schedules &amp; webhooks</NavLink>
          <NavLink href="/analytics">Metrics</NavLink>
        </nav>
        <span className="spacer" />
        <a href="/api/docs" className="nav-link" target="_blank" rel="noreferrer">
          API docs
        </a>
        <button
          type="button"
          className="ghost"
          onClick={() => {
            queryClient.clear();
            signOut();
          }}
        >
          Sign out
        </button>
      </header>
      <main className="content">
        <Switch>
          <Route path="/" component={WorkflowsPage} />
          <Route path="/workflows/:id">
            {(p) => <WorkflowPage id={decodeURIComponent(p.id)} />}
          </Route>
          <Route path="/runs" component={RunsPage} />
          <Route path="/runs/:id">{(p) => <RunPage key={p.id} id={p.id} />}</Route>
          <Route path="/waiting" component={WaitingPage} />
          <Route path="/schedules" component={SchedulesPage} />
          <Route path="/analytics" component={MetricsPage} />
          <Route>
            <div className="state-box empty">
              <strong>No page here.</strong>
              <Link href="/">Go to the workflows</Link>
            </div>
          </Route>
        </Switch>
      </main>
    </div>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
