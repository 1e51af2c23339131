"""deploy/local/cluster.py without starting anything: the conf it writes and the properties file."""

import json

from deploy.local import cluster
from deploy.local import config as local_config
from deploy.local.state import StateDirs
from deploy.managed_flink import RUN_OPTIONS_GROUP

CONFIG = local_config.REPO_ROOT / "deploy" / "config" / "cluster.json"


def test_the_conf_is_what_managed_flink_runs_an_application_with(tmp_path):
    running = cluster.Cluster(StateDirs(tmp_path))
    conf = cluster.flink_conf(running, local_config.load(CONFIG), parallelism=2, checkpoint_seconds=5)
    assert conf["state.backend.type"] == "rocksdb" and conf["execution.checkpointing.incremental"] == "true"
    assert conf["execution.checkpointing.dir"] == "s3://cluster-store/_flink/checkpoints"
    assert conf["execution.checkpointing.interval"] == "5 s" and conf["parallelism.default"] == "2"
    assert conf["s3.endpoint"] == "http://127.0.0.1:4566" and conf["s3.path.style.access"] == "true"
    assert conf["python.executable"] == conf["python.client.executable"] == str(running.python)
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in conf["env.java.opts.all"]  # kept from the distribution


def test_every_port_is_fixed_and_taken_once():
    ports = cluster.Ports()
    single = [ports.rest, ports.rpc] + [int(p) for n in (1, 2, 3) for p in ports.taskmanager(n).values()]
    ranges = [range(int(a), int(b) + 1) for a, b in (value.split("-") for value in ports.conf().values() if "-" in value)]
    taken = single + [port for r in ranges for port in r]
    assert len(taken) == len(set(taken))
    assert not {8081, 6123} & set(taken)


def test_the_properties_file_is_the_config_in_managed_flinks_format():
    groups = {g["PropertyGroupId"]: g["PropertyMap"]
              for g in json.loads(cluster.properties_json(CONFIG, local_config.load(CONFIG)))}
    assert groups[RUN_OPTIONS_GROUP] == {"python": "jobs/managed_flink_main.py", "jarfile": "lib/pyflink-dependencies.jar",
                                         "pyFiles": "lib/python"}
    assert groups["job"]["checkpoint.dir"] == "s3://cluster-store/_flink/checkpoints"
    assert all(value != "" for values in groups.values() for value in values.values())  # the API refuses empty values
