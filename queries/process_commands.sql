-- name: process_commands
-- kind: view
-- description: Per process, the command name people call it by (what `sizes --by command` groups by): for an interpreter or launcher the program it runs (`python -m gunicorn` -> gunicorn, `python3 app.py` -> app.py, `java -jar x.jar` -> x.jar, `node server.js` -> server.js), else comm; with the rule that named it and the interpreter (basename of exe, else of argv[0]).
-- The launcher registry (docs/smem.md, "Command names"): one row per rule, tried in `pri` order for processes whose
-- interpreter (basename of exe without " (deleted)", else of the first word of cmdline, else comm) and
-- argv[0] (the basename of the first word of cmdline) both match `interp` (a program that rewrote its command
-- line, gunicorn with setproctitle: `gunicorn: worker [app]`, keeps comm); the first rule whose `prog` regex captures a non-empty group 1 in the command line names the
-- process.  Options are skipped (those taking a value with it); an inline-code option (-c, -e, -r ...) stops
-- the skip, so the rule does not match and the process keeps comm (`python -c ...` -> python, `sh -c ...` -> sh).
-- The command line is recorded with its arguments joined by spaces, so an argument holding a space is two words.
-- Portable SQL (regexp_extract, regexp_replace, row_number, VALUES) with RE2/Java-compatible regexes.
WITH launchers (pri, rule, interp, prog) AS (
    VALUES
    (1, 'python -m MODULE | python SCRIPT', '^python[0-9.]*$',
     '^\S+(?:\s+(?:-[WX]\s*\S+|--check-hash-based-pycs\s+\S+|-[^-\scmWX]\S*))*\s+(?:-m\s*)?(?:[^\s-]\S*/)?([^\s/-][^\s/]*)'),
    (2, 'java -jar JAR', '^java$', '\s-jar\s+(?:\S*/)?([^\s/]+)'),
    (3, 'java MAINCLASS', '^java$',
     '^\S+(?:\s+(?:-(?:cp|classpath|-class-path|p|-module-path|-add-modules|-add-opens|-add-exports)\s+\S+|-\S+))*\s+([^\s-]\S*)'),
    (4, 'node SCRIPT', '^(?:node|nodejs|bun|deno)$',
     '^\S+(?:\s+(?:-(?:r|-require|-import|-loader)\s+\S+|-[^-\sep]\S*|--[^\sep]\S*))*\s+(?:run\s+)?(?:\S*/)?([^\s/-][^\s/]*)'),
    (5, 'perl SCRIPT', '^perl[0-9.]*$', '^\S+(?:\s+-[^\seE]\S*)*\s+(?:\S*/)?([^\s/-][^\s/]*)'),
    (6, 'ruby SCRIPT', '^ruby[0-9.]*$',
     '^\S+(?:\s+(?:-[Ir]\s+\S+|-[^\se]\S*))*\s+(?:\S*/)?([^\s/-][^\s/]*)'),
    (7, 'php SCRIPT', '^php[0-9.]*$', '^\S+(?:\s+(?:-[cdz]\s+\S+|-[^\srcdzBERF]\S*))*\s+(?:-f\s+)?(?:\S*/)?([^\s/-][^\s/]*)'),
    (8, 'sh SCRIPT', '^(?:ba|da|z|k|mk|a)?sh$', '^\S+(?:\s+(?:-o\s+\S+|[-+][^\sc-]*))*\s+(?:\S*/)?([^\s/+-][^\s/]*)')
),
procs AS (
    SELECT host, snapshot_id, pid, comm, cmdline, exe,
           coalesce(regexp_extract(cmdline, '^(?:\S*/)?(\S+)', 1), '') AS argv0,
           coalesce(regexp_extract(coalesce(regexp_replace(exe, ' \(deleted\)$', ''),
                                            regexp_extract(cmdline, '^(\S+)', 1)), '([^/]*)$', 1), comm, '') AS interpreter
    FROM processes
),
-- each regex runs once per distinct value it reads, not per process: a pattern that is a column is compiled for
-- every row it is applied to (1,000 processes x 8 rules: 2 s of `sizes` at 1,000 processes, issue 15)
kinds AS (SELECT DISTINCT interpreter, argv0 FROM procs),
matched AS (
    SELECT k.interpreter, k.argv0, l.pri, l.rule, l.prog
    FROM kinds k JOIN launchers l
        ON regexp_extract(k.interpreter, l.interp, 0) <> '' AND regexp_extract(k.argv0, l.interp, 0) <> ''
),
progs AS (
    SELECT c.cmdline, c.pri, regexp_extract(c.cmdline, c.prog, 1) AS program
    FROM (SELECT DISTINCT p.cmdline, m.pri, m.prog FROM procs p JOIN matched m
          ON m.interpreter = p.interpreter AND m.argv0 = p.argv0) c
),
named AS (
    SELECT p.host, p.snapshot_id, p.pid, m.pri, m.rule, g.program
    FROM procs p JOIN matched m ON m.interpreter = p.interpreter AND m.argv0 = p.argv0
    JOIN progs g ON g.cmdline = p.cmdline AND g.pri = m.pri
),
-- the first rule whose program is not empty: empty ones are ordered last and left out after the window, not
-- filtered before it (a filter on program there is pushed below progs' DISTINCT, and its regex then runs per
-- process: 75 against 36 ms at 1,000 processes)
firsts AS (
    SELECT host, snapshot_id, pid, rule, program,
           row_number() OVER (PARTITION BY host, snapshot_id, pid ORDER BY coalesce(program, '') = '', pri) AS n
    FROM named
)
SELECT p.host, p.snapshot_id, p.pid, coalesce(f.program, p.comm) AS command, f.rule, p.interpreter
FROM procs p LEFT JOIN firsts f ON f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pid = p.pid AND f.n = 1
    AND f.program <> ''
