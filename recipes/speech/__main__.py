from recipes.speech.main import main

main()
