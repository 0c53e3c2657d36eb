/** The model definition from the seed system's user guide (shared/seed-model-serving.rst), verbatim. */
export const SEED_EXAMPLE = `models:
  - name: "simple-http-server"
    model_path: "/models"
    service:
      start_command:
        - python
        - -m
        - http.server
        - --directory
        - /home/work
        - "8000"
      port: 8000
      health_check:
        path: /
        max_retries: 5
`;
