namespace ComputeAgent.Instances.Store;

/// <summary>One step of the schema: applied once, in version order, to bring a database to <see cref="Version"/>.</summary>
internal sealed record Migration(int Version, string Description, string Sql);

/// <summary>The schema's history. Append a step to change the schema; never edit a released one.</summary>
internal static class Migrations
{
    public static readonly IReadOnlyList<Migration> All =
    [
        new(1, "instances, faults, task journal, event log", """
            CREATE TABLE instances (
                uuid TEXT NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                spec_json TEXT NOT NULL,
                vm_state TEXT NOT NULL,
                task_state TEXT NOT NULL,
                power_state TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                vm_state_before_task TEXT,
                pre_resize_json TEXT,
                pre_rescue_xml TEXT,
                deleted_at TEXT
            );

            CREATE TABLE faults (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                uuid TEXT NOT NULL REFERENCES instances (uuid) ON DELETE CASCADE,
                code TEXT NOT NULL,
                message TEXT NOT NULL,
                details TEXT,
                created_at TEXT NOT NULL
            );
            CREATE INDEX faults_by_instance ON faults (uuid, id);

            -- One task in flight per instance.
            CREATE TABLE task_journal (
                uuid TEXT NOT NULL PRIMARY KEY REFERENCES instances (uuid) ON DELETE CASCADE,
                command TEXT NOT NULL,
                step TEXT NOT NULL,
                started_at TEXT NOT NULL,
                created_json TEXT NOT NULL
            );

            -- AUTOINCREMENT: a sequence number is never reused, even after a prune; the controller
            -- resends from its last acknowledged one. No foreign key: the log outlives the rows.
            CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                uuid TEXT NOT NULL,
                old_vm_state TEXT,
                new_vm_state TEXT NOT NULL,
                old_task_state TEXT,
                new_task_state TEXT NOT NULL,
                old_power_state TEXT,
                new_power_state TEXT NOT NULL,
                cause TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE TRIGGER events_append_only BEFORE UPDATE ON events
            BEGIN
                SELECT RAISE(ABORT, 'events are append-only');
            END;
            """),
        new(2, "request ledger: the first answer to each request id, so a retry after an agent restart is not done twice", """
            CREATE TABLE request_ledger (
                request_id TEXT NOT NULL PRIMARY KEY,
                method TEXT NOT NULL,
                answer BLOB NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE INDEX request_ledger_by_age ON request_ledger (created_at);
            """),
        new(3, "admin passwords are not kept: blank those that older versions stored with the spec", """
            UPDATE instances SET spec_json = json_remove(spec_json, '$.guest.admin_password')
                WHERE json_extract(spec_json, '$.guest.admin_password') IS NOT NULL;
            UPDATE instances SET pre_resize_json = json_remove(pre_resize_json, '$.spec.guest.admin_password')
                WHERE json_extract(pre_resize_json, '$.spec.guest.admin_password') IS NOT NULL;
            """),
    ];

    public static int Latest(IReadOnlyList<Migration> migrations) => migrations.Count == 0 ? 0 : migrations[^1].Version;
}
