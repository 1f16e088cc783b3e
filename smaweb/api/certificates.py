"""/api/v1/certificates: PFX or PEM uploads; the private key is kept encrypted."""

from __future__ import annotations

from flask.views import MethodView

from smacommon.models import Certificate
from smacommon.schemas.asset import (
    AssetQueryArgsSchema,
    CertificateCreateSchema,
    CertificatePageSchema,
    CertificateSchema,
)
from smacommon.services import assets as svc
from smaweb.api._assets import commit, crypto, page
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("certificates", __name__, url_prefix="/api/v1/certificates",
                   description="Certificates: thumbprint, subject and expiry are shown.")


@blp.route("")
class Certificates(MethodView):
    @blp.operation_id("listCertificates")
    @blp.arguments(AssetQueryArgsSchema, location="query")
    @blp.response(200, CertificatePageSchema)
    def get(self, args):
        """List certificates."""
        return page(Certificate, args)

    @blp.operation_id("createCertificate")
    @blp.arguments(CertificateCreateSchema)
    @blp.response(201, CertificateSchema)
    def post(self, data):
        """Upload a certificate: `data` is the PFX (with `password`) or PEM, in base64."""
        data["data_base64"] = data.pop("data")
        return commit(svc.create_certificate(db.session, crypto(), **data))


@blp.route("/<name>")
class CertificateByName(MethodView):
    @blp.operation_id("getCertificate")
    @blp.response(200, CertificateSchema)
    def get(self, name):
        """Get a certificate's details."""
        return svc.get_asset(db.session, Certificate, name)

    @blp.operation_id("deleteCertificate")
    @blp.response(204)
    def delete(self, name):
        """Delete a certificate."""
        svc.delete_asset(db.session, Certificate, name)
        db.session.commit()
