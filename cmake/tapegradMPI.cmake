# MPI for tapegrad::distributed. Option TAPEGRAD_WITH_MPI (default ON): use MPI if it is found; OFF: never.
# Sets TAPEGRAD_HAS_MPI (1/0, also #defined in tapegrad/version.h) and, when found, tapegrad::mpi: the MPI C
# library under a name the installed package defines again (like tapegrad::hdf5), so a consumer project
# need not enable C for FindMPI.
# tapegrad_add_mpi_test(NAME <test> NP <ranks> [TRANSPORT shm|tcp] [TIMEOUT <s>] [LABELS ...] COMMAND <exe> [args...])
#   registers a CTest test that runs the command under mpirun, labelled `mpi` (and part of the default run):
#   - Open MPI as root needs --allow-run-as-root (passed here; OMPI_ALLOW_RUN_AS_ROOT=1 with
#     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment is the alternative), and --oversubscribe to start
#     more ranks than there are cores (-np 3 on 2 cores);
#   - TRANSPORT shm forces shared memory (--mca btl vader,self), tcp forces TCP over loopback
#     (--mca btl tcp,self), standing in for separate hosts; without TRANSPORT Open MPI chooses;
#   - the whole run is wrapped in `timeout` (default 60 s; SIGKILL 5 s later), so a hang fails the test
#     instead of CI;
#   - COMMAND must name an executable file ($<TARGET_FILE:tgt> for a target: the first word is `timeout`);
#   - with TAPEGRAD_SANITIZE the leak check is off (Open MPI's own allocations at exit), ASan/UBSan stay on.
option(TAPEGRAD_WITH_MPI "Build tapegrad::distributed (data-parallel training over MPI) when MPI is found" ON)
# ASan's options for anything run under mpirun or MPI's singleton start, with TAPEGRAD_SANITIZE: Open MPI
# leaves its own allocations (many in plugins it has already unloaded, so no suppression can name them) at
# MPI_Finalize, so no leak check; a request the machine cannot satisfy still reaches tapegrad as bad_alloc.
set(TAPEGRAD_MPI_ASAN_OPTIONS "detect_leaks=0:allocator_may_return_null=1")
set(TAPEGRAD_HAS_MPI 0)
if(TAPEGRAD_WITH_MPI)
  find_package(MPI COMPONENTS C)
  if(MPI_C_FOUND)
    set(TAPEGRAD_HAS_MPI 1)
    add_library(tapegrad::mpi INTERFACE IMPORTED)
    target_link_libraries(tapegrad::mpi INTERFACE MPI::MPI_C)
    message(STATUS "[tapegrad] MPI ${MPI_C_VERSION} found: building tapegrad::distributed")
  else()
    message(STATUS "[tapegrad] MPI not found: tapegrad::distributed is not built (install libopenmpi-dev openmpi-bin)")
  endif()
else()
  message(STATUS "[tapegrad] TAPEGRAD_WITH_MPI=OFF: tapegrad::distributed is not built")
endif()

function(tapegrad_add_mpi_test)
  cmake_parse_arguments(arg "" "NAME;NP;TRANSPORT;TIMEOUT" "LABELS;COMMAND" ${ARGN})
  if(NOT arg_NAME OR NOT arg_NP OR NOT arg_COMMAND)
    message(FATAL_ERROR "[tapegrad_add_mpi_test] NAME, NP and COMMAND are required; got ${ARGN}")
  endif()
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 60)
  endif()
  if(NOT DEFINED CACHE{TAPEGRAD_MPIEXEC_IS_OPENMPI})
    execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE version ERROR_QUIET)
    if(version MATCHES "Open MPI|OpenRTE")
      set(is_openmpi ON)
    else()
      set(is_openmpi OFF)
    endif()
    set(TAPEGRAD_MPIEXEC_IS_OPENMPI ${is_openmpi} CACHE INTERNAL "mpiexec is Open MPI's")
  endif()
  find_program(TAPEGRAD_TIMEOUT_EXECUTABLE timeout)
  set(launcher "")
  if(TAPEGRAD_TIMEOUT_EXECUTABLE)
    set(launcher ${TAPEGRAD_TIMEOUT_EXECUTABLE} --kill-after=5 ${arg_TIMEOUT})
  endif()
  set(flags "")
  if(TAPEGRAD_MPIEXEC_IS_OPENMPI)
    list(APPEND flags --allow-run-as-root --oversubscribe)
    if(arg_TRANSPORT STREQUAL "shm")
      list(APPEND flags --mca btl vader,self)
    elseif(arg_TRANSPORT STREQUAL "tcp")
      list(APPEND flags --mca btl tcp,self)
    elseif(arg_TRANSPORT)
      message(FATAL_ERROR "[tapegrad_add_mpi_test] TRANSPORT is shm or tcp; got ${arg_TRANSPORT}")
    endif()
  endif()
  add_test(NAME ${arg_NAME}
           COMMAND ${launcher} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${arg_NP} ${flags} ${MPIEXEC_PREFLAGS}
                   ${arg_COMMAND} ${MPIEXEC_POSTFLAGS})
  math(EXPR ctest_timeout "${arg_TIMEOUT} + 30")
  set_tests_properties(${arg_NAME} PROPERTIES LABELS "mpi;${arg_LABELS}" TIMEOUT ${ctest_timeout})
  if(TAPEGRAD_SANITIZE)
    # No leak check under MPI (TAPEGRAD_MPI_ASAN_OPTIONS); ASan and UBSan errors still abort. The ranks on
    # this host inherit mpirun's environment.
    set_tests_properties(${arg_NAME} PROPERTIES ENVIRONMENT "ASAN_OPTIONS=${TAPEGRAD_MPI_ASAN_OPTIONS}")
  endif()
endfunction()
