def main(args):
    name = args.get("name", "world")
    print("python greeting " + name)
    return {"greeting": "Hello, " + name + "!"}
