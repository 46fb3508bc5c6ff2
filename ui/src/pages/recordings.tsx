// Recordings search: by agent, team, time, call, masked, policy version.
import { useState } from "preact/hooks";
import { get, query } from "../api";
import { when } from "../format";
import { Failure, Field, Table, Title, useLoad } from "../ui";

export interface Recording {
  session: string;
  sequence: number;
  device: string;
  agent: string;
  team: string | null;
  call_id: string | null;
  masked: boolean;
  start: string;
  end: string;
  policy_version: number;
}

/** One session's segments (`#/recordings/<session>`): a 403 says the session is another team's. */
function Session({ id }: { id: string }) {
  const { data, error } = useLoad(
    () => get<{ recordings: Recording[] }>(`/v1/recordings/${encodeURIComponent(id)}`),
    [id],
  );
  return (
    <main id="main">
      <Title>Recording {id.slice(0, 8)}</Title>
      <p>
        <a href="#/recordings">Back to the search</a>
      </p>
      {error !== null && <Failure error={error} />}
      {data && (
        <Table
          caption={`Session ${id}: ${data.recordings.length} segment(s)`}
          rows={data.recordings}
          rowKey={(r) => String(r.sequence)}
          empty="No segment."
          columns={[
            ["#", (r) => r.sequence],
            ["Start", (r) => when(r.start)],
            ["End", (r) => when(r.end)],
            ["Agent", (r) => r.agent],
            ["Masked", (r) => (r.masked ? "yes" : "no")],
            ["Policy", (r) => `v${r.policy_version}`],
          ]}
        />
      )}
    </main>
  );
}

export function Recordings({ param }: { param?: string }) {
  if (param) return <Session id={param} />;
  return <Search />;
}

function Search() {
  const [agent, setAgent] = useState("");
  const [team, setTeam] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [call, setCall] = useState("");
  const [found, setFound] = useState<Recording[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const search = async () => {
    setError(null);
    try {
      const r = await get<{ recordings: Recording[] }>(
        `/v1/recordings${query({ agent, team, from, to, call_id: call })}`,
      );
      setFound(r.recordings);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <main id="main">
      <Title>Recordings</Title>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <Field label="Agent" value={agent} onInput={setAgent} />
        <Field label="Team" value={team} onInput={setTeam} />
        <Field label="From" value={from} onInput={setFrom} placeholder="2026-12-01 or -24h" />
        <Field label="To" value={to} onInput={setTo} placeholder="now" />
        <Field label="Call" value={call} onInput={setCall} />
        <button type="submit">Search</button>
      </form>
      {error !== null && <Failure error={error} />}
      {found !== null && (
        <Table
          caption={`${found.length} segment(s)`}
          rows={found}
          rowKey={(r) => `${r.session}/${r.sequence}`}
          empty="Nothing matches."
          columns={[
            ["Start", (r) => when(r.start)],
            ["End", (r) => when(r.end)],
            ["Agent", (r) => r.agent],
            ["Team", (r) => r.team ?? "—"],
            ["Call", (r) => r.call_id ?? "—"],
            ["Masked", (r) => (r.masked ? "yes" : "no")],
            ["Policy", (r) => `v${r.policy_version}`],
            ["Session", (r) => <a href={`#/recordings/${r.session}`}>{`${r.session.slice(0, 8)} #${r.sequence}`}</a>],
          ]}
        />
      )}
    </main>
  );
}
