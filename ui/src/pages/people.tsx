// Users and roles, and grants waiting for a second person's approval.
import { get, post } from "../api";
import { Failure, Table, Title, useLoad } from "../ui";

interface User {
  name: string;
  role: string;
  teams: string[];
  disabled: boolean;
}

interface Pending {
  request: string;
  requested_by: string;
  requested_at: string;
  grant: Record<string, unknown>;
}

export function People() {
  const users = useLoad(() => get<{ users: User[] }>("/v1/users"));
  const grants = useLoad(() => get<{ requests: Pending[] }>("/v1/grants"));
  const decide = async (id: string, verdict: "approve" | "reject") => {
    await post(`/v1/grants/${id}/${verdict}`, {});
    grants.reload();
    users.reload();
  };
  return (
    <main id="main">
      <Title>Users and roles</Title>
      {users.error !== null && <Failure error={users.error} />}
      {users.data && (
        <Table
          caption="Accounts"
          rows={users.data.users}
          rowKey={(u) => u.name}
          empty="No account."
          columns={[
            ["Name", (u) => u.name],
            ["Role", (u) => u.role],
            ["Teams", (u) => u.teams.join(", ") || "all"],
            ["State", (u) => (u.disabled ? "disabled" : "active")],
          ]}
        />
      )}
      <h2>Grants waiting for approval</h2>
      {grants.error !== null && <Failure error={grants.error} />}
      {grants.data && (
        <Table
          caption="Requests (the requester cannot approve their own)"
          rows={grants.data.requests}
          rowKey={(g) => g.request}
          empty="None waiting."
          columns={[
            ["Asked by", (g) => g.requested_by],
            ["When", (g) => g.requested_at],
            ["Change", (g) => JSON.stringify(g.grant)],
            [
              "Decide",
              (g) => (
                <span class="actions">
                  <button type="button" onClick={() => void decide(g.request, "approve")}>
                    Approve
                  </button>
                  <button type="button" onClick={() => void decide(g.request, "reject")}>
                    Reject
                  </button>
                </span>
              ),
            ],
          ]}
        />
      )}
    </main>
  );
}
