"""`doppel batch`: a plan of stage jobs (YAML) expanded into a DAG of tasks and run on Ray.

`plan` reads and checks the plan file, `stages` is the registry of stages a plan can name, `dag` expands jobs into
tasks with their dependencies, `execute` runs them on Ray (the driver gates and registers, workers compute),
`worker` is what runs in a Ray worker (and the task records behind --resume), `report` writes batch_report.html.
"""
