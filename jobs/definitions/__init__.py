"""What the features are: config, the SQL files, each feature group's shape, replay cut-overs."""
