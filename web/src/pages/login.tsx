import { useEffect, useState } from "preact/hooks";
import { errorText, login } from "../api";
import { navigate } from "../router";

export function LoginPage() {
  const [tenant, setTenant] = useState(() => localStorage.getItem("ehub.tenant") || "demo");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  useEffect(() => {
    document.title = "Sign in · ehub";
  }, []);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErr("");
    try {
      await login(tenant.trim(), email.trim(), password);
      try {
        localStorage.setItem("ehub.tenant", tenant.trim());
      } catch {
        /* ignore */
      }
      const next = new URLSearchParams(location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/leads", true);
    } catch (e) {
      setErr(e && (e as any).status === 401 ? "Wrong tenant, e-mail or password." : errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="login" id="main">
      <div class="login-card">
        <div class="login-brand">
          <span class="brand-mark" aria-hidden="true">e</span>
          <div>
            <h1>Sign in to ehub</h1>
            <p class="muted">Lead intelligence for your team</p>
          </div>
        </div>
        <form onSubmit={submit} aria-describedby={err ? "login-error" : undefined}>
          <label class="field">
            <span>Tenant</span>
            <input name="tenant" autocomplete="organization" required value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} />
          </label>
          <label class="field">
            <span>E-mail</span>
            <input name="email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
          </label>
          <label class="field">
            <span>Password</span>
            <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
          </label>
          {err && (
            <p class="error-note" id="login-error" role="alert">
              {err}
            </p>
          )}
          <button class="btn btn-primary btn-block" type="submit" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <p class="muted small">
          Running the demo (<code>make run</code>)? Its terminal prints a login for each role.
        </p>
      </div>
    </main>
  );
}
