variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the control plane."
  default     = "mallard"
}

variable "create_namespace" {
  type        = bool
  description = "Create the namespace (false: it already exists)."
  default     = true
}

variable "release_name" {
  type        = string
  description = "Name of the Helm release; the chart names its objects <release>-mallard-control-plane-*."
  default     = "mallard"
}

variable "chart" {
  type        = string
  description = "Helm chart to install: a path or a repository chart name. Null: the mallard-control-plane chart in this repository."
  default     = null
}

variable "chart_version" {
  type        = string
  description = "Chart version when chart names a repository chart. Null: the local chart's version."
  default     = null
}

variable "image_repository" {
  type        = string
  description = "Control-plane image repository (the image `make images` builds, pushed to your registry)."
  default     = "mallard-control-plane"
}

variable "image_tag" {
  type        = string
  description = "Control-plane image tag. Empty: the chart's appVersion."
  default     = ""
}

variable "database_url" {
  type        = string
  description = "PostgreSQL URL, e.g. postgresql+psycopg://mallard:pw@db.internal:5432/mallard. Kept in a Kubernetes Secret."
  sensitive   = true

  validation {
    condition     = can(regex("^postgresql(\\+psycopg)?://", var.database_url))
    error_message = "database_url must be a PostgreSQL URL starting with postgresql+psycopg:// (or postgresql://)."
  }
}

variable "redis_url" {
  type        = string
  description = "Redis URL of the scheduler's broker, e.g. redis://redis.internal:6379/0. Null: no scheduler."
  default     = null
  sensitive   = true
}

variable "scheduler_enabled" {
  type        = bool
  description = "Run the Celery worker and beat Deployments (needs redis_url)."
  default     = true
}

variable "bootstrap_token" {
  type        = string
  description = "Token POST /api/v1/bootstrap requires (X-Bootstrap-Token). Null: the chart generates one in a Secret."
  default     = null
  sensitive   = true
}

variable "pki_secret_name" {
  type        = string
  description = "Existing Secret with ca.key, ca.crt, jwt.key and jwt.pub. Null: the PKI is created once on a persistent volume."
  default     = null
}

variable "gateway_hostname" {
  type        = string
  description = "Public DNS name agents dial; it goes into the gateway's certificate. Null: in-cluster names only."
  default     = null
}

variable "gateway_service_type" {
  type        = string
  description = "Service type of the gateway: LoadBalancer when agents connect from other networks, else ClusterIP or NodePort."
  default     = "LoadBalancer"

  validation {
    condition     = contains(["ClusterIP", "NodePort", "LoadBalancer"], var.gateway_service_type)
    error_message = "gateway_service_type must be ClusterIP, NodePort or LoadBalancer."
  }
}

variable "gateway_service_annotations" {
  type        = map(string)
  description = "Annotations of the gateway Service, e.g. for the cloud's load balancer."
  default     = {}
}

variable "api_replicas" {
  type        = number
  description = "Replicas of the REST API. More than one on different nodes needs pki_secret_name or a ReadWriteMany state volume."
  default     = 1
}

variable "gateway_replicas" {
  type        = number
  description = "Replicas of the gateway."
  default     = 1
}

variable "storage_class" {
  type        = string
  description = "Storage class of the state volume (the PKI). Use a ReadWriteMany class when API and gateway pods may land on different nodes."
  default     = ""
}

variable "storage_access_mode" {
  type        = string
  description = "Access mode of the state volume: ReadWriteOnce keeps API and gateway on one node, ReadWriteMany spreads them."
  default     = "ReadWriteOnce"
}

variable "helm_values" {
  type        = any
  description = "Extra values for the mallard-control-plane chart, merged over the ones this module sets (see helm/mallard-control-plane/README.md)."
  default     = {}
}

variable "helm_timeout" {
  type        = number
  description = "Seconds Helm waits for every Deployment to become ready."
  default     = 600
}
