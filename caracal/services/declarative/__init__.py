"""Authority as code: a workspace's declarative state as a reviewed YAML file, the plan that
turns the workspace into it, and applying that plan in one transaction."""
