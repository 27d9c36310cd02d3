from services.tts.serving import main

main()
