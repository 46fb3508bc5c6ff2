// Legal holds: what is kept past retention, for which case, and why.
import { get } from "../api";
import { when } from "../format";
import { Failure, Table, Title, useLoad } from "../ui";

interface Hold {
  id: string;
  case: string;
  scopes: Record<string, unknown>[];
  created_by: string;
  created_at: string;
  reason: string;
  active: boolean;
}

export function Holds() {
  const { data, error } = useLoad(() => get<{ holds: Hold[] }>("/v1/holds"));
  return (
    <main id="main">
      <Title>Legal holds</Title>
      {error !== null && <Failure error={error} />}
      {data && (
        <Table
          caption="Holds, active first"
          rows={[...data.holds].sort((a, b) => Number(b.active) - Number(a.active))}
          rowKey={(h) => h.id}
          empty="No hold."
          columns={[
            ["Case", (h) => h.case],
            ["Covers", (h) => h.scopes.map((s) => JSON.stringify(s)).join("; ")],
            ["Placed", (h) => `${when(h.created_at)} by ${h.created_by}`],
            ["Why", (h) => h.reason],
            ["State", (h) => (h.active ? "active" : "released")],
          ]}
        />
      )}
    </main>
  );
}
