// Signing in: password, then a one-time password change, then the second factor (a code, or
// enrolling an authenticator app the first time), as the vault asks for each.
import { useState } from "preact/hooks";
import { ApiError, Login, post, setCsrf } from "../api";
import { Failure, Field, Title } from "../ui";

type Step = "password" | "code" | "change" | "enroll";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [step, setStep] = useState<Step>("password");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const attempt = async (totp?: string, secret = password) => {
    setBusy(true);
    setError(null);
    try {
      const login = await post<Login>("/v1/login", { name, password: secret, totp });
      setCsrf(login.csrf_token);
      if (login.must_change_password) setStep("change");
      else if (login.mfa_enrollment_required) setStep("enroll");
      else onSignedIn();
    } catch (e) {
      if (e instanceof ApiError && e.code === "totp_required") setStep("code");
      else setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin">
      <Title>Sign in to Vigil</Title>
      {step === "password" || step === "code" ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void attempt(step === "code" ? code : undefined);
          }}
        >
          <Field label="Account" value={name} onInput={setName} required autoComplete="username" />
          <Field
            label="Password"
            type="password"
            value={password}
            onInput={setPassword}
            required
            autoComplete="current-password"
          />
          {step === "code" && (
            <Field
              label="Code from your authenticator app"
              value={code}
              onInput={setCode}
              required
              autoComplete="one-time-code"
            />
          )}
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </form>
      ) : step === "change" ? (
        <ChangePassword
          current={password}
          onChanged={(fresh) => {
            setPassword(fresh);
            setStep("password");
            void attempt(undefined, fresh);
          }}
        />
      ) : (
        <EnrollFactor onDone={onSignedIn} />
      )}
      {error !== null && <Failure error={error} />}
    </main>
  );
}

/** The one-time (or expired) password replaced; then the console signs in with the new one. */
function ChangePassword({ current, onChanged }: { current: string; onChanged: (p: string) => void }) {
  const [fresh, setFresh] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        if (fresh !== again) {
          setError(new Error("The two new passwords differ."));
          return;
        }
        try {
          await post("/v1/password", { current, new: fresh });
          setCsrf(null);
          onChanged(fresh);
        } catch (err) {
          setError(err);
        }
      }}
    >
      <p>Your password must be changed before you go on (at least 12 characters, hard to guess).</p>
      <Field label="New password" type="password" value={fresh} onInput={setFresh} required autoComplete="new-password" />
      <Field label="New password again" type="password" value={again} onInput={setAgain} required autoComplete="new-password" />
      <button type="submit">Change password</button>
      {error !== null && <Failure error={error} />}
    </form>
  );
}

/** A first second factor: the secret to type into an authenticator app, then its first code. */
function EnrollFactor({ onDone }: { onDone: () => void }) {
  const [factor, setFactor] = useState<{ secret: string; otpauth_url: string } | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  if (factor === null) {
    return (
      <div>
        <p>Your role needs a second factor. Add Vigil to an authenticator app to continue.</p>
        <button
          type="button"
          onClick={async () => {
            try {
              setFactor(await post("/v1/mfa/totp"));
            } catch (e) {
              setError(e);
            }
          }}
        >
          Set up an authenticator app
        </button>
        {error !== null && <Failure error={error} />}
      </div>
    );
  }
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await post("/v1/mfa/totp/confirm", { code });
          onDone();
        } catch (err) {
          setError(err);
        }
      }}
    >
      <p>
        Secret (type it into the app, or open the link on your phone): <code class="secret">{factor.secret}</code>
      </p>
      <p>
        <a href={factor.otpauth_url}>Open in an authenticator app</a>
      </p>
      <Field label="First code from the app" value={code} onInput={setCode} required autoComplete="one-time-code" />
      <button type="submit">Confirm</button>
      {error !== null && <Failure error={error} />}
    </form>
  );
}
