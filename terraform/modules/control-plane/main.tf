# The Mallard control plane on Kubernetes: the mallard-control-plane chart with its PostgreSQL and
# Redis endpoints (inputs of this module) kept in a Secret rather than in Helm values.

locals {
  chart       = coalesce(var.chart, "${path.module}/../../../helm/mallard-control-plane")
  fullname    = strcontains(var.release_name, "mallard-control-plane") ? var.release_name : "${var.release_name}-mallard-control-plane"
  secret_name = "${local.fullname}-endpoints"
  namespace   = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace
  # Whether a secret input was given is not itself secret; keep the chart values readable in plans.
  has_redis           = nonsensitive(var.redis_url != null)
  has_bootstrap_token = nonsensitive(var.bootstrap_token != null)

  chart_values = {
    image = {
      repository = var.image_repository
      tag        = var.image_tag
    }
    database = {
      existingSecret    = local.secret_name
      existingSecretKey = "database-url"
    }
    broker = {
      existingSecret    = local.has_redis ? local.secret_name : ""
      existingSecretKey = "broker-url"
    }
    bootstrapToken = {
      existingSecret    = local.has_bootstrap_token ? local.secret_name : ""
      existingSecretKey = "bootstrap-token"
    }
    pki = {
      existingSecret = var.pki_secret_name == null ? "" : var.pki_secret_name
    }
    persistence = {
      storageClass = var.storage_class
      accessMode   = var.storage_access_mode
    }
    api = {
      replicas = var.api_replicas
    }
    gateway = {
      replicas = var.gateway_replicas
      tlsNames = var.gateway_hostname == null ? [] : [var.gateway_hostname]
      service = {
        type        = var.gateway_service_type
        annotations = var.gateway_service_annotations
      }
    }
    scheduler = {
      enabled = var.scheduler_enabled
    }
  }
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "mallard"
    }
  }
}

resource "kubernetes_secret_v1" "endpoints" {
  metadata {
    name      = local.secret_name
    namespace = local.namespace
    labels = {
      "app.kubernetes.io/name"    = "mallard-control-plane"
      "app.kubernetes.io/part-of" = "mallard"
    }
  }

  data = {
    for key, value in {
      "database-url"    = var.database_url
      "broker-url"      = var.redis_url
      "bootstrap-token" = var.bootstrap_token
    } : key => value if value != null
  }
}

resource "helm_release" "control_plane" {
  name      = var.release_name
  namespace = kubernetes_secret_v1.endpoints.metadata[0].namespace
  chart     = local.chart
  version   = var.chart_version

  wait    = true
  timeout = var.helm_timeout

  values = [
    yamlencode(local.chart_values),
    yamlencode(var.helm_values),
  ]

  lifecycle {
    precondition {
      condition     = !var.scheduler_enabled || local.has_redis
      error_message = "scheduler_enabled needs redis_url (the Celery broker); set redis_url or scheduler_enabled = false."
    }
  }
}
