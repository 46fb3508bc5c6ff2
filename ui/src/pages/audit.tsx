// The audit log: who did what, when, why, from where; filters and paging.
import { useState } from "preact/hooks";
import { get, query } from "../api";
import { when } from "../format";
import { Failure, Field, Table, Title, useLoad } from "../ui";

interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  reason: string | null;
  client_addr: string | null;
  user_agent: string | null;
}

export function Audit() {
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [from, setFrom] = useState("");
  const [filter, setFilter] = useState({ actor: "", action: "", from: "" });
  const { data, error } = useLoad(
    () =>
      get<{ records: AuditRecord[]; next_after: number | null }>(
        `/v1/audit${query({ ...filter, limit: 200 })}`,
      ),
    [filter],
  );
  return (
    <main id="main">
      <Title>Audit log</Title>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ actor, action, from });
        }}
      >
        <Field label="Actor" value={actor} onInput={setActor} placeholder="user:ann" />
        <Field label="Action" value={action} onInput={setAction} placeholder="recording.play" />
        <Field label="From" value={from} onInput={setFrom} placeholder="-7d" />
        <button type="submit">Filter</button>
      </form>
      <p class="note">
        Reading this log is itself recorded. The chain is checked with <code>vigil-vault audit verify</code>.
      </p>
      {error !== null && <Failure error={error} />}
      {data && (
        <Table
          caption={`${data.records.length} record(s), oldest first`}
          rows={data.records}
          rowKey={(r) => String(r.seq)}
          empty="No record matches."
          columns={[
            ["#", (r) => r.seq],
            ["When", (r) => when(r.at)],
            ["Who", (r) => r.actor],
            ["What", (r) => r.action],
            ["On", (r) => r.target ?? "—"],
            ["Why", (r) => r.reason ?? "—"],
            ["From", (r) => [r.client_addr, r.user_agent].filter(Boolean).join(" · ") || "—"],
          ]}
        />
      )}
    </main>
  );
}
