"""Talk to AWS: read-only look-ups before a deploy, then run (or print) the planned requests.

Errors come back as DeployError with the failing request and what to check, never a traceback:
a missing bucket or role names the config key that points at it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, TextIO
from urllib.parse import unquote

import boto3
from botocore import xform_name
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from deploy.managed_flink.package import Artifact
from deploy.managed_flink.plan import ApiCall, Existing, Plan, code_key
from deploy.managed_flink.settings import DeploySettings

log = logging.getLogger(__name__)

SERVICE_PRINCIPAL = "kinesisanalytics.amazonaws.com"


class DeployError(RuntimeError):
    """An AWS request failed or AWS is not in the state deploy needs; the message says what to do."""


@dataclass
class Clients:
    kinesisanalyticsv2: Any
    s3: Any
    logs: Any
    iam: Any

    def of(self, service: str) -> Any:
        return getattr(self, service)


def make_clients(region: str) -> Clients:
    config = BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120)
    session = boto3.session.Session(region_name=region)
    return Clients(*(session.client(name, config=config) for name in ("kinesisanalyticsv2", "s3", "logs", "iam")))


def have_credentials() -> bool:
    """Whether boto3's credential chain finds any (environment, profile, SSO, instance role...)."""
    try:
        return boto3.session.Session().get_credentials() is not None
    except BotoCoreError:
        return False


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or error_code(error)


def describe_application(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return client.describe_application(ApplicationName=name)["ApplicationDetail"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise DeployError(f"DescribeApplication {name}: {error_code(error)}: {_message(error)}") from None


def _check_bucket(settings: DeploySettings, s3: Any) -> None:
    try:
        s3.head_bucket(Bucket=settings.code_bucket)
    except ClientError as error:
        code = error_code(error)
        if code in ("404", "NoSuchBucket"):
            raise DeployError(f"code bucket '{settings.code_bucket}' does not exist (property group 'deploy' key "
                              f"'code.bucket' in {settings.origin}); create it in {settings.region} or fix the "
                              "key") from None
        if code in ("403", "AccessDenied"):
            raise DeployError(f"no access to code bucket '{settings.code_bucket}' (property group 'deploy' key "
                              "'code.bucket'): the deploying identity needs s3:ListBucket and s3:PutObject on it "
                              "(deploy/iam/deployer-policy.json)") from None
        raise DeployError(f"HeadBucket {settings.code_bucket}: {code}: {_message(error)}") from None


def _uploaded(settings: DeploySettings, artifact: Artifact, s3: Any) -> bool:
    try:
        head = s3.head_object(Bucket=settings.code_bucket, Key=code_key(settings, artifact))
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey"):
            return False
        raise DeployError(f"HeadObject s3://{settings.code_bucket}/{code_key(settings, artifact)}: "
                          f"{error_code(error)}: {_message(error)}") from None
    return head.get("Metadata", {}).get("sha256") == artifact.sha256 and head.get("ContentLength") == artifact.size


def _trusts_service(document: Any) -> bool:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = statement.get("Principal", {}).get("Service", []) if isinstance(statement.get("Principal"), dict) else []
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and SERVICE_PRINCIPAL in services:
            return True
    return False


def check_role(settings: DeploySettings, iam: Any) -> None:
    """Before any change: the role exists and Managed Flink may assume it (when we may look)."""
    role_name = settings.service_role_arn.rsplit("/", 1)[1]
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            raise DeployError(f"service role {settings.service_role_arn} does not exist (property group 'deploy' key "
                              f"'service.role.arn' in {settings.origin}); create it with deploy/iam/trust-policy.json "
                              "and deploy/iam/application-policy.json") from None
        if error_code(error) in ("AccessDenied", "AccessDeniedException"):
            log.info("cannot read role %s (no iam:GetRole); not checked before deploying", role_name)
            return
        raise DeployError(f"GetRole {role_name}: {error_code(error)}: {_message(error)}") from None
    if role.get("Arn") and role["Arn"] != settings.service_role_arn:
        raise DeployError(f"role {role_name} is {role['Arn']}, not {settings.service_role_arn} "
                          "(property group 'deploy' key 'service.role.arn')")
    if not _trusts_service(role.get("AssumeRolePolicyDocument", {})):
        raise DeployError(f"service role {settings.service_role_arn} does not trust {SERVICE_PRINCIPAL}, so Managed "
                          "Flink cannot assume it; use deploy/iam/trust-policy.json as its trust policy")


def _log_state(settings: DeploySettings, logs: Any) -> tuple[bool, bool]:
    try:
        groups = logs.describe_log_groups(logGroupNamePrefix=settings.log_group)["logGroups"]
        if not any(group["logGroupName"] == settings.log_group for group in groups):
            return False, False
        streams = logs.describe_log_streams(logGroupName=settings.log_group,
                                            logStreamNamePrefix=settings.log_stream)["logStreams"]
    except ClientError as error:
        raise DeployError(f"CloudWatch Logs {settings.log_group}: {error_code(error)}: {_message(error)}") from None
    return True, any(stream["logStreamName"] == settings.log_stream for stream in streams)


def look_up(settings: DeploySettings, artifact: Artifact, clients: Clients) -> Existing:
    """Read-only calls only: what exists now decides create vs update and what to skip."""
    _check_bucket(settings, clients.s3)
    check_role(settings, clients.iam)
    log_group, log_stream = _log_state(settings, clients.logs)
    return Existing(code_uploaded=_uploaded(settings, artifact, clients.s3), log_group=log_group,
                    log_stream=log_stream,
                    application=describe_application(clients.kinesisanalyticsv2, settings.application_name))


def _hint(settings: DeploySettings, call: ApiCall, error: ClientError) -> str:
    code, message = error_code(error), _message(error)
    text = f"{call.service} {call.operation} failed: {code}: {message}"
    lowered = message.lower()
    if call.service == "kinesisanalyticsv2" and code == "InvalidArgumentException" and "role" in lowered:
        return (f"{text}\nManaged Flink cannot use service role {settings.service_role_arn} (property group 'deploy' "
                "key 'service.role.arn'): it must exist, trust kinesisanalytics.amazonaws.com "
                "(deploy/iam/trust-policy.json) and allow what deploy/iam/application-policy.json lists")
    if "iam:passrole" in lowered:
        return (f"{text}\nthe deploying identity needs iam:PassRole on {settings.service_role_arn} "
                "(deploy/iam/deployer-policy.json)")
    if code == "NoSuchBucket":
        return f"{text}\ncode bucket '{settings.code_bucket}' does not exist (property group 'deploy' key 'code.bucket')"
    if code == "ConcurrentModificationException":
        return f"{text}\nthe application changed while deploying; re-run deploy"
    return text


def _version_of(response: dict[str, Any]) -> int | None:
    if "ApplicationVersionId" in response:
        return int(response["ApplicationVersionId"])
    detail = response.get("ApplicationDetail")
    return int(detail["ApplicationVersionId"]) if detail else None


def execute(settings: DeploySettings, plan: Plan, clients: Clients) -> list[dict[str, Any]]:
    """Run the calls in order; each Add*/Update call gets the version id the previous one returned."""
    responses = []
    version: int | None = None
    for call in plan.calls:
        params = dict(call.params)
        if call.takes_version and version is not None:
            if version != params["CurrentApplicationVersionId"]:
                log.info("version id is %d (planned %d)", version, params["CurrentApplicationVersionId"])
            params["CurrentApplicationVersionId"] = version
        method: Callable[..., dict[str, Any]] = getattr(clients.of(call.service), xform_name(call.operation))
        log.info("%s %s", call.service, call.operation)
        try:
            if call.body_path is not None:
                with open(call.body_path, "rb") as body:
                    response = method(Body=body, **params)
            else:
                response = method(**params)
        except ClientError as error:
            if call.service == "logs" and error_code(error) == "ResourceAlreadyExistsException":
                continue  # created meanwhile by someone else: what we wanted
            raise DeployError(_hint(settings, call, error)) from None
        except NoCredentialsError:
            raise DeployError("no AWS credentials found (environment, profile or instance role)") from None
        version = _version_of(response) or version
        responses.append(response)
    return responses


def print_plan(plan: Plan, credentials: bool, out: TextIO) -> None:
    """--dry-run: the exact requests, as JSON, and nothing sent."""
    document = {
        "dry_run": True,
        "looked_up": credentials,  # False: no credentials, so the create path is shown
        "requests": [call.as_json() for call in plan.calls],
        "notes": plan.notes,
    }
    json.dump(document, out, indent=2)
    out.write("\n")
