variable "name" {
  type        = string
  description = "Name of the agent (a lowercase DNS label). It names the join token, the Helm release and the Kubernetes objects."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase DNS label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace the agent runs in."
  default     = "mallard"
}

variable "create_namespace" {
  type        = bool
  description = "Create the namespace (false: it already exists)."
  default     = true
}

variable "control_plane_address" {
  type        = string
  description = "HOST:PORT of the control plane's gateway agent link (mTLS), e.g. gateway.mallard.example.com:8701."

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", var.control_plane_address))
    error_message = "control_plane_address must be HOST:PORT, e.g. gateway.mallard.example.com:8701."
  }
}

variable "enroll_address" {
  type        = string
  description = "HOST:PORT of the gateway's enrollment port. Empty: the link port + 1."
  default     = ""
}

variable "control_plane_ca_pem" {
  type        = string
  description = "PEM of the CA that signed the gateway's certificate (the control plane's pki/ca.crt). Null: the system CA bundle."
  default     = null
}

variable "tls_server_name" {
  type        = string
  description = "Name to check in the gateway's certificate when it differs from the host in control_plane_address."
  default     = ""
}

variable "join_token_ttl" {
  type        = string
  description = "How long the join token stays valid, e.g. 30m or 2h. The agent must start and enroll within it."
  default     = "1h"
}

variable "revoke_agent_on_destroy" {
  type        = bool
  description = "When the module is destroyed, revoke the agent the join token enrolled (its certificate stops working at once)."
  default     = true
}

variable "chart" {
  type        = string
  description = "Helm chart to install: a path or a repository chart name. Null: the mallard-agent chart in this repository."
  default     = null
}

variable "chart_version" {
  type        = string
  description = "Chart version when chart names a repository chart. Null: the local chart's version."
  default     = null
}

variable "image_repository" {
  type        = string
  description = "Agent image repository (the image `make images` builds, pushed to your registry)."
  default     = "mallard-agent"
}

variable "image_tag" {
  type        = string
  description = "Agent image tag. Empty: the chart's appVersion."
  default     = ""
}

variable "storage_class" {
  type        = string
  description = "Storage class of the volume holding the agent's key, certificate and outbox. Empty: the cluster default."
  default     = ""
}

variable "gateway_cidrs" {
  type        = list(string)
  description = "CIDRs of the control plane's gateway for the agent's NetworkPolicy. Empty: any address, gateway ports only."
  default     = []
}

variable "stores" {
  type = list(object({
    cidr  = string
    ports = list(number)
  }))
  description = "In-VPC stores the agent may reach (NetworkPolicy egress), e.g. [{ cidr = \"10.0.0.0/16\", ports = [443, 5432, 6379] }]."
  default     = []
}

variable "create_bucket" {
  type        = bool
  description = "Create an S3 bucket for the data plane's object store and a least-privilege IAM policy for it."
  default     = false
}

variable "bucket_name" {
  type        = string
  description = "Name of the bucket to create. Null: a unique name starting with \"mallard-<name>-\"."
  default     = null
}

variable "bucket_prefix_path" {
  type        = string
  description = "Key prefix the agent writes under in the bucket; the IAM policy allows only this prefix."
  default     = "mallard"
}

variable "bucket_force_destroy" {
  type        = bool
  description = "Let destroy delete a bucket that still holds objects (models, inference logs, features)."
  default     = false
}

variable "iam_role_name" {
  type        = string
  description = "IAM role (e.g. the agent's IRSA role) to attach the bucket policy to. Null: attach nothing."
  default     = null
}

variable "service_account_annotations" {
  type        = map(string)
  description = "Annotations of the agent's ServiceAccount, e.g. { \"eks.amazonaws.com/role-arn\" = aws_iam_role.agent.arn }."
  default     = {}
}

variable "helm_values" {
  type        = any
  description = "Extra values for the mallard-agent chart, merged over the ones this module sets (see helm/mallard-agent/README.md)."
  default     = {}
}

variable "helm_timeout" {
  type        = number
  description = "Seconds Helm waits for the agent to enroll and become ready."
  default     = 600
}
