"""The statement set translated once into the stream graph Flink runs.

Planning every INSERT is the costly part of a local start (~3 s of one core). The fingerprint needs
the stream graph and a local run then submits it, so both use one translation: the graph that is
hashed is the graph that runs. Stream graphs are built from it when needed, under the configuration
as it is then (a checkpoint to restore is set after the fingerprint).
"""

from __future__ import annotations

from pyflink.table import StatementSet, TableEnvironment


def translate(t_env: TableEnvironment, statement_set: StatementSet):
    """The Java transformations of every INSERT in ``statement_set`` (nothing runs)."""
    return t_env._j_tenv.getPlanner().translate(statement_set._j_statement_set.getOperations())


def build(t_env: TableEnvironment, transformations):
    """The Java StreamGraph of ``transformations``, named by the job's ``pipeline.name``."""
    j_env = t_env._j_tenv
    return _executor(j_env).createPipeline(transformations, j_env.getConfig().getConfiguration(), "feature-pipeline")


def submit(t_env: TableEnvironment, stream_graph):
    """Start ``stream_graph`` on the environment's executor (locally, the MiniCluster): its JobClient."""
    return _executor(t_env._j_tenv).executeAsync(stream_graph)


def _executor(j_env):
    """The table environment's executor, which builds and runs stream graphs (not public in Flink 1.20)."""
    cls = j_env.getClass()
    while cls is not None:
        try:
            field = cls.getDeclaredField("execEnv")
            field.setAccessible(True)
            return field.get(j_env)
        except Exception:  # noqa: BLE001 - py4j raises for a missing field; look in the superclass
            cls = cls.getSuperclass()
    raise RuntimeError("Flink's TableEnvironmentImpl has no execEnv field (Flink version changed?)")
