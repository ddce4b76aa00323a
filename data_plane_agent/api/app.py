"""Data-plane REST API. Calls carry a short-lived JWT the control plane signed; it is
verified here, offline, with the control plane's public key, so the data plane keeps
working while the control plane is unreachable."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from data_plane_agent.api.errors import error_response
from data_plane_agent.api.inputs import InputLimits
from data_plane_agent.api.online_features import ONLINE_PATH, online_endpoint
from data_plane_agent.api.routes_artifacts import artifacts_router
from data_plane_agent.api.routes_builds import builds_router
from data_plane_agent.api.routes_contexts import contexts_router
from data_plane_agent.api.routes_features import features_router
from data_plane_agent.api.routes_lake import lake_router
from data_plane_agent.api.routes_predict import PREDICT_PATH, GatewayApp, predict_endpoint, serving_router
from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.builds import BuildManager
from data_plane_agent.features.service import FeatureService
from data_plane_agent.lake import LakeQuery
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.serving import ServingEngine
from data_plane_agent.storage import ObjectStore
from shared import __version__
from shared.errors import MallardError, Unauthenticated, Unavailable
from shared.jwt_tokens import DataPlaneClaims, verify


def create_app(
    home: AgentHome,
    link_state: LinkState,
    *,
    store: ObjectStore | None = None,
    builds: BuildManager | None = None,
    max_context_bytes: int = 200 * 1024 * 1024,
    engine: ServingEngine | None = None,
    predict_limits: InputLimits | None = None,
    lake_query: LakeQuery | None = None,
    features: FeatureService | None = None,
) -> FastAPI:
    app = GatewayApp(
        title="Mallard data plane", version=__version__, docs_url="/v1/docs", openapi_url="/v1/openapi.json"
    )
    identity = home.identity()

    @app.exception_handler(MallardError)
    async def _mallard_error(_request: Request, exc: MallardError) -> JSONResponse:
        return error_response(exc)

    def claims(request: Request) -> DataPlaneClaims:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing bearer token; get one with POST /api/v1/data-plane/token")
        if not home.jwt_public_key.exists():
            raise Unavailable("this agent has no token verification key yet; it gets one at enrollment")
        return verify(token.strip(), home.jwt_public_key.read_bytes(), tenant_id=identity.tenant_id)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness: the process serves requests. Public, for probes."""
        return {
            "status": "ok",
            "agent_id": identity.agent_id,
            "link": "connected" if link_state.connected else "disconnected",
        }

    @app.get("/v1/ready", tags=["health"])
    def ready() -> JSONResponse:
        """Readiness: enrolled and able to verify tokens (the link may be down; serving goes on)."""
        ok = home.jwt_public_key.exists()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v1/version", tags=["health"])
    def version() -> dict[str, str]:
        return {"version": __version__, "agent_id": identity.agent_id, "tenant_id": identity.tenant_id}

    @app.get("/v1/whoami", tags=["auth"])
    def whoami(c: DataPlaneClaims = Depends(claims)) -> dict[str, Any]:
        """Who the presented token says the caller is (checks the JWT path end to end)."""
        return {
            "subject": c.subject,
            "tenant_id": c.tenant_id,
            "role": c.role,
            "expires_at": c.expires_at,
            "agent_id": identity.agent_id,
        }

    if store is not None:
        spool = home.root / "uploads"
        app.include_router(contexts_router(store=store, max_bytes=max_context_bytes, claims=claims, spool_dir=spool))
        app.include_router(artifacts_router(store=store, claims=claims))
    if builds is not None:
        app.include_router(builds_router(builds=builds, claims=claims))
    if engine is not None:
        verifier = TokenVerifier(home.jwt_public_key, tenant_id=identity.tenant_id)
        predict = predict_endpoint(engine, verifier, predict_limits or InputLimits())
        app.add_route(PREDICT_PATH, predict, methods=["POST"])
        app.predict = predict  # served ahead of FastAPI's middleware stack (GatewayApp)
        app.include_router(serving_router(engine=engine, claims=claims))
    if lake_query is not None:
        app.include_router(lake_router(query=lake_query, claims=claims))
    if features is not None:
        feature_verifier = TokenVerifier(home.jwt_public_key, tenant_id=identity.tenant_id)
        online = online_endpoint(features, feature_verifier)
        app.include_router(features_router(service=features, store=store, verifier=feature_verifier, online=online))
        app.fast_posts = {ONLINE_PATH: online}  # served ahead of FastAPI's middleware stack (GatewayApp)
    return app
