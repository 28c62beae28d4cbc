"""The empty handler of the Lambda benchmark (benches/lambda_http.sh): all cost is the path."""


def handler(event, context):
    return {}
