"""`caracal shell`: a restricted interactive shell that runs only Caracal commands, in process.

`rules` decides what a typed line may do (pure), `tree` describes the command tree it checks
against, `completion` feeds Tab, `session` carries out one line and `repl` reads the lines."""
