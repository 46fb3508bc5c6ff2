// Live agents: what each is doing now, pushed by the vault as it changes; filter by team.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api";
import { ago, bytes } from "../format";
import { Failure, Table, Title } from "../ui";

export interface Agent {
  device_id: string;
  hostname: string;
  user: string;
  team: string | null;
  status: string;
  reported_at: number | null;
  screen: boolean;
  masked: boolean;
  paused: boolean;
  backlog_segments: number;
  backlog_bytes: number;
  policy_version: number;
  agent_version: string | null;
  last_policy_refusal: [number, string] | null;
  triggers_down: string[];
}

/** The state in words, never by colour alone. */
export function state(a: Agent): string {
  if (a.status !== "recording") return a.status.replace(/_/g, " ");
  if (a.paused) return "paused";
  if (a.masked) return "masked";
  return a.screen ? "recording" : "recording (voice only)";
}

export function Agents() {
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [team, setTeam] = useState("");
  useEffect(() => {
    // Server-sent events: the whole list now, then whenever a heartbeat changes it (and every
    // few seconds at most, so silent agents turn offline). EventSource reconnects by itself.
    const source = new EventSource("/v1/agents/events");
    source.addEventListener("agents", (e) => {
      setAgents((JSON.parse((e as MessageEvent<string>).data) as { agents: Agent[] }).agents);
      setError(null);
    });
    source.onerror = () => {
      // A refusal (signed out, no permission) surfaces through the API's answer.
      get("/v1/agents").catch((err: unknown) => setError(err));
    };
    return () => source.close();
  }, []);
  const teams = [...new Set((agents ?? []).map((a) => a.team ?? ""))].filter(Boolean).sort();
  const shown = (agents ?? []).filter((a) => !team || a.team === team);
  return (
    <main id="main">
      <Title>Live agents</Title>
      <label class="field inline">
        <span>Team</span>
        <select value={team} onChange={(e) => setTeam((e.target as HTMLSelectElement).value)}>
          <option value="">All teams</option>
          {teams.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </label>
      {error !== null && <Failure error={error} />}
      {agents === null ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <Table
          caption={`${shown.length} agent(s), live`}
          rowKey={(a) => a.device_id}
          rows={shown}
          empty="No agent has enrolled yet."
          columns={[
            ["Agent", (a) => `${a.user} @ ${a.hostname}`],
            ["Team", (a) => a.team ?? "—"],
            ["State", (a) => <span class={`state state-${state(a).split(" ")[0]}`} data-device={a.device_id}>{state(a)}</span>],
            ["Last report", (a) => ago(a.reported_at)],
            ["Backlog", (a) => `${a.backlog_segments} (${bytes(a.backlog_bytes)})`],
            ["Policy", (a) => `v${a.policy_version}`],
            [
              "Problems",
              (a) =>
                [
                  ...a.triggers_down.map((t) => `${t} down`),
                  ...(a.last_policy_refusal ? [`policy refused: ${a.last_policy_refusal[1]}`] : []),
                ].join("; ") || "—",
            ],
          ]}
        />
      )}
    </main>
  );
}
