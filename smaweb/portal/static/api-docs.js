// /api/docs: Swagger UI over the OpenAPI document (from a file: the CSP allows no inline script)
window.addEventListener("load", function () {
  "use strict";
  const box = document.getElementById("swagger-ui-container");
  // no validatorUrl: Swagger UI would send the document's address to validator.swagger.io
  const config = Object.assign({url: box.dataset.specUrl, dom_id: "#swagger-ui-container",
                                validatorUrl: null}, JSON.parse(box.dataset.config || "{}"));
  window.ui = window.SwaggerUIBundle(config);
});
