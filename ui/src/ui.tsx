// Small building blocks every page uses: loading and error states, data tables, forms.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

/** The page's heading; takes focus when the page opens (keyboard and screen-reader users land on it). */
export function Title({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

/** An error as the API said it; 403 becomes the page's "not allowed". */
export function Failure({ error }: { error: unknown }) {
  if (error instanceof ApiError && error.status === 403) {
    return (
      <section class="forbidden" role="alert">
        <h2>Not allowed</h2>
        <p>Your role does not give you access to this ({error.code || "forbidden"}).</p>
      </section>
    );
  }
  const text = error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

/** Loads `load()` on mount and whenever `deps` change; `reload` fetches again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => live && (setData(d), setError(null)),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/** A data table with a caption (its accessible name). */
export function Table<T>({
  caption,
  columns,
  rows,
  empty,
  rowKey,
}: {
  caption: string;
  columns: [string, (row: T) => ComponentChildren][];
  rows: T[];
  empty: string;
  rowKey: (row: T) => string;
}) {
  if (rows.length === 0) return <p class="empty">{empty}</p>;
  return (
    // Focusable, so a keyboard can scroll a table wider than the window.
    <div class="table-wrap" tabIndex={0} role="region" aria-label={caption}>
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map(([name]) => (
              <th scope="col" key={name}>
                {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={rowKey(row)}>
              {columns.map(([name, cell]) => (
                <td key={name}>{cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A labelled text input. */
export function Field({
  label,
  value,
  onInput,
  type = "text",
  required = false,
  autoComplete,
  placeholder,
}: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  type?: string;
  required?: boolean;
  autoComplete?: string;
  placeholder?: string;
}) {
  return (
    <label class="field">
      <span>{label}</span>
      <input
        type={type}
        value={value}
        required={required}
        autoComplete={autoComplete}
        placeholder={placeholder}
        onInput={(e) => onInput((e.target as HTMLInputElement).value)}
      />
    </label>
  );
}
