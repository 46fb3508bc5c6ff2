// Enrolled devices (agents' machines) and their keys.
import { get } from "../api";
import { when } from "../format";
import { Failure, Table, Title, useLoad } from "../ui";

interface Device {
  id: string;
  key_id: string;
  hostname: string;
  user: string;
  team: string | null;
  enrolled_at: number;
  revoked_at: number | null;
}

export function Devices() {
  const { data, error } = useLoad(() => get<{ devices: Device[] }>("/v1/devices"));
  return (
    <main id="main">
      <Title>Devices</Title>
      <p class="note">
        Enrollment tokens for IT: <code>vigil-vault token create --team TEAM</code>, then{" "}
        <code>msiexec /i vigil.msi /qn VAULT_URL=… ENROLL_TOKEN=… TEAM=…</code>.
      </p>
      {error !== null && <Failure error={error} />}
      {data && (
        <Table
          caption={`${data.devices.length} device(s)`}
          rows={data.devices}
          rowKey={(d) => d.id}
          empty="No device has enrolled yet."
          columns={[
            ["Machine", (d) => d.hostname],
            ["User", (d) => d.user],
            ["Team", (d) => d.team ?? "—"],
            ["Key", (d) => d.key_id.slice(0, 16)],
            ["Enrolled", (d) => when(d.enrolled_at)],
            ["State", (d) => (d.revoked_at ? `revoked ${when(d.revoked_at)}` : "active")],
          ]}
        />
      )}
    </main>
  );
}
