-- name: shared_members
-- kind: macro
-- description: Table macro shared_members(h, sid, grp_by, pat, pfilter, ufilter): the processes of one snapshot that pass the -P/-U filters (kernel threads excluded), with their group under grp_by = user | command (the name of process_commands: the program an interpreter runs, else comm) | cgroup | regex (pat on the command line) | name (pat on the command name, comm); with regex and name the rest is '(other)'.
CREATE OR REPLACE MACRO shared_members(h, sid, grp_by, pat, pfilter, ufilter) AS TABLE
SELECT pid, comm, cmdline, "user",
       CASE grp_by
           WHEN 'user' THEN coalesce("user", CAST(euid AS VARCHAR))
           WHEN 'command' THEN coalesce((SELECT c.command FROM process_commands c WHERE c.host = h
                                         AND c.snapshot_id = sid AND c.pid = processes.pid), comm, '?')
           WHEN 'cgroup' THEN coalesce(cgroup, '?')
           WHEN 'regex' THEN CASE WHEN regexp_matches(coalesce(cmdline, comm, ''), coalesce(pat, ''))
                                  THEN 'regex:' || pat ELSE '(other)' END
           WHEN 'name' THEN CASE WHEN regexp_matches(coalesce(comm, ''), coalesce(pat, ''))
                                 THEN 'name:' || pat ELSE '(other)' END
           ELSE CAST(pid AS VARCHAR)
       END AS grp
FROM processes
WHERE host = h AND snapshot_id = sid AND NOT coalesce(kernel_thread, false) AND status IN ('ok', 'partial')
  AND (pfilter IS NULL OR regexp_matches(coalesce(comm, ''), pfilter) OR regexp_matches(coalesce(cmdline, ''), pfilter))
  AND (ufilter IS NULL OR regexp_matches(coalesce("user", CAST(euid AS VARCHAR)), ufilter))
