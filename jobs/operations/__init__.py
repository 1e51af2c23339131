"""Operating the running job: start checks, table migrations, the replay upgrade."""
