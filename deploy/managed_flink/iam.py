"""IAM policies generated from a deploy config, so they name exactly its stream, bucket prefixes,
secret and log stream and nothing else.

  application-policy.json  what the application's service role may do at run time
  trust-policy.json        lets Managed Flink (only for this application) assume that role
  deployer-policy.json     what the identity running `deploy`/`start`/`stop`/`status` needs

deploy/iam/ holds them generated from deploy/config/aws.example.json (a test keeps them equal);
for a real deployment generate them from your config:
``python -m deploy.managed_flink iam --config FILE --out-dir DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deploy.managed_flink.settings import DeploySettings

POLICY_VERSION = "2012-10-17"
FILES = ("application-policy.json", "trust-policy.json", "deployer-policy.json")


def _statement(sid: str, actions: list[str], resources: list[str] | str,
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _output_location(settings: DeploySettings) -> tuple[str, str]:
    url = urlparse(settings.job.get("output", "path"))
    return url.netloc, url.path.strip("/")


def application_policy(settings: DeploySettings) -> dict[str, Any]:
    s3 = f"arn:{settings.partition}:s3:::"
    bucket, prefix = _output_location(settings)
    logs = f"arn:{settings.partition}:logs:{settings.region}:{settings.account}:log-group:"
    statements = [
        _statement("ReadApplicationCode", ["s3:GetObject", "s3:GetObjectVersion"],
                   [f"{s3}{settings.code_bucket}/{settings.code_prefix}*"]),
        # Polling consumer (no enhanced fan-out): shard discovery, iterators, records.
        _statement("ReadSourceStream", ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                                        "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"],
                   [settings.job.get("source", "stream.arn")]),
        _statement("ListOutputPrefix", ["s3:ListBucket"], [f"{s3}{bucket}"],
                   {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}} if prefix else None),
        # Features, quarantine and raw archive; delete and multipart for commits and compaction.
        _statement("WriteOutputPrefix", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                         "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                   [f"{s3}{bucket}/{prefix}/*" if prefix else f"{s3}{bucket}/*"]),
        # GetSecretValue from Python at start and the readers; the JDBC sinks' Secrets Manager
        # driver caches the secret and asks DescribeSecret which version is current.
        _statement("ReadDatabasePassword", ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                   [settings.job.get("rds", "password.secret.arn")]),
        _statement("ListLogGroups", ["logs:DescribeLogGroups"], [f"{logs}*"]),
        _statement("ListLogStreams", ["logs:DescribeLogStreams"], [f"{settings.log_group_arn}:log-stream:*"]),
        _statement("WriteLogs", ["logs:PutLogEvents"], [settings.log_stream_arn]),
        _statement("PublishMetrics", ["cloudwatch:PutMetricData"], "*",
                   {"StringEquals": {"cloudwatch:namespace": "AWS/KinesisAnalytics"}}),
    ]
    if settings.uses_vpc:
        # As Managed Flink documents them: EC2 offers no resource-level scoping for the describes,
        # and the service manages the application's ENIs in the configured subnets.
        statements += [
            _statement("VpcReadOnly", ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
                                       "ec2:DescribeDhcpOptions"], "*"),
            _statement("VpcNetworkInterfaces", ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                                                "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"], "*"),
        ]
    return {"Version": POLICY_VERSION, "Statement": statements}


def trust_policy(settings: DeploySettings) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "kinesisanalytics.amazonaws.com"},
        "Action": "sts:AssumeRole",
        # Confused-deputy guard: only this account's application may assume the role.
        "Condition": {"StringEquals": {"aws:SourceAccount": settings.account},
                      "ArnEquals": {"aws:SourceArn": settings.application_arn}},
    }]}


def deployer_policy(settings: DeploySettings) -> dict[str, Any]:
    """Exactly the calls deploy.managed_flink makes."""
    s3 = f"arn:{settings.partition}:s3:::"
    bucket, prefix = _output_location(settings)
    return {"Version": POLICY_VERSION, "Statement": [
        _statement("UploadCode", ["s3:PutObject", "s3:GetObject"],
                   [f"{s3}{settings.code_bucket}/{settings.code_prefix}*"]),
        # HeadBucket, and HeadObject answering 404 rather than 403 for a new key.
        _statement("FindCodeBucket", ["s3:ListBucket"], [settings.code_bucket_arn]),
        _statement("ListLogGroups", ["logs:DescribeLogGroups"],
                   [f"arn:{settings.partition}:logs:{settings.region}:{settings.account}:log-group:*"]),
        _statement("CreateLogs", ["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DescribeLogStreams",
                                  "logs:CreateLogStream"],
                   [settings.log_group_arn, f"{settings.log_group_arn}:log-stream:*"]),
        _statement("CheckRole", ["iam:GetRole"], [settings.service_role_arn]),
        _statement("PassRole", ["iam:PassRole"], [settings.service_role_arn],
                   {"StringEquals": {"iam:PassedToService": "kinesisanalytics.amazonaws.com"}}),
        _statement("ManageApplication", [
            "kinesisanalytics:CreateApplication", "kinesisanalytics:DescribeApplication",
            "kinesisanalytics:UpdateApplication", "kinesisanalytics:AddApplicationVpcConfiguration",
            "kinesisanalytics:AddApplicationCloudWatchLoggingOption", "kinesisanalytics:StartApplication",
            "kinesisanalytics:StopApplication", "kinesisanalytics:ListApplicationSnapshots",
            "kinesisanalytics:ListApplicationOperations", "kinesisanalytics:DescribeApplicationOperation",
            "kinesisanalytics:CreateApplicationPresignedUrl"], [settings.application_arn]),
        # A replay upgrade (README, Upgrades): the stream's retention, the Parquet markers and the
        # trim of rows committed past them, the PostgreSQL password for the markers there.
        _statement("CheckStreamRetention", ["kinesis:DescribeStreamSummary"], [settings.job.get("source", "stream.arn")]),
        _statement("ListOutputPrefix", ["s3:ListBucket"], [f"{s3}{bucket}"],
                   {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}} if prefix else None),
        _statement("TrimOutputPrefix", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                   [f"{s3}{bucket}/{prefix}/*" if prefix else f"{s3}{bucket}/*"]),
        _statement("ReadDatabasePassword", ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                   [settings.job.get("rds", "password.secret.arn")]),
    ]}


def policies(settings: DeploySettings) -> dict[str, dict[str, Any]]:
    return {
        "application-policy.json": application_policy(settings),
        "trust-policy.json": trust_policy(settings),
        "deployer-policy.json": deployer_policy(settings),
    }


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def write(settings: DeploySettings, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, policy in policies(settings).items():
        (out_dir / name).write_text(render(policy), encoding="utf-8")
        written.append(out_dir / name)
    return written
