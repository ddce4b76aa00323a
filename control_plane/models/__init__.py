"""SQLModel tables of the control plane. Every tenant-owned table carries `tenant_id`."""

from control_plane.models.agents import Agent, AgentCertificate, AgentCommand, AgentEvent, JoinToken
from control_plane.models.audit import AuditLog
from control_plane.models.builds import Build, BuildTag, RegisteredModel
from control_plane.models.common import new_id, utcnow
from control_plane.models.deployments import Deployment, DeploymentRevision, ServingMetric
from control_plane.models.features import FeatureMaterialization, FeatureSetDefinition
from control_plane.models.projects import Project
from control_plane.models.tenants import ApiKey, Membership, Role, Tenant, User

__all__ = [
    "Agent",
    "AgentCertificate",
    "AgentCommand",
    "AgentEvent",
    "ApiKey",
    "AuditLog",
    "Build",
    "BuildTag",
    "Deployment",
    "DeploymentRevision",
    "FeatureMaterialization",
    "FeatureSetDefinition",
    "JoinToken",
    "Membership",
    "Project",
    "RegisteredModel",
    "Role",
    "ServingMetric",
    "Tenant",
    "User",
    "new_id",
    "utcnow",
]
