# Tests of tapegrad::distributed, included from tests/CMakeLists.txt when MPI was found (label `mpi`, part of
# the default ctest run; `ctest -L mpi` runs them alone). Each executable runs under mpirun in three layouts:
#   distributed/<name>_np2_shm              -np 2 over shared memory (--mca btl vader,self)
#   distributed/<name>_np2_tcp              -np 2 with TCP forced (--mca btl tcp,self): stands in for two hosts
#   distributed/<name>_np3_oversubscribed   -np 3 on this 2-core machine (--oversubscribe)
# (readme_example runs the README's snippet verbatim) each wrapped in `timeout 30` (tapegrad_add_mpi_test in cmake/tapegradMPI.cmake), so none can hang CI.
# single_process_test runs without mpirun (MPI's singleton start), one process per test case.
set(mpi_test_warnings ${TAPEGRAD_WARNINGS})
if(TAPEGRAD_SANITIZE)   # GCC 12's false -Wmaybe-uninitialized inside std::regex (see tests/CMakeLists.txt)
  list(APPEND mpi_test_warnings -Wno-maybe-uninitialized)
endif()
add_library(tapegrad_mpi_catch_main STATIC ${CMAKE_CURRENT_LIST_DIR}/mpi_main.cpp)
target_link_libraries(tapegrad_mpi_catch_main PUBLIC Catch2::Catch2 tapegrad_distributed)
target_compile_options(tapegrad_mpi_catch_main PRIVATE ${mpi_test_warnings})

foreach(name communicator gradient_averager errors readme_example)
  set(target distributed_${name}_test)
  add_executable(${target} ${CMAKE_CURRENT_LIST_DIR}/${name}_test.cpp)
  target_link_libraries(${target} PRIVATE tapegrad_mpi_catch_main tapegrad_layers tapegrad_optim)
  target_compile_options(${target} PRIVATE ${mpi_test_warnings})
  target_compile_definitions(${target} PRIVATE TAPEGRAD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..)   # support/readme_support.h
  tapegrad_add_mpi_test(NAME distributed/${name}_np2_shm NP 2 TRANSPORT shm TIMEOUT 30 COMMAND $<TARGET_FILE:${target}>)
  tapegrad_add_mpi_test(NAME distributed/${name}_np2_tcp NP 2 TRANSPORT tcp TIMEOUT 30 COMMAND $<TARGET_FILE:${target}>)
  tapegrad_add_mpi_test(NAME distributed/${name}_np3_oversubscribed NP 3 TRANSPORT shm TIMEOUT 30
                        COMMAND $<TARGET_FILE:${target}>)
endforeach()
# The checks that need no second rank also run on one (mpirun -np 1).
tapegrad_add_mpi_test(NAME distributed/communicator_np1 NP 1 TIMEOUT 30 COMMAND $<TARGET_FILE:distributed_communicator_test>)
tapegrad_add_mpi_test(NAME distributed/gradient_averager_np1 NP 1 TIMEOUT 30
                      COMMAND $<TARGET_FILE:distributed_gradient_averager_test>)

# One rank's error unwinds through its Environment while the other waits in a barrier: the launch must end
# with the Environment's abort message (it hung in MPI_Finalize before).
add_executable(distributed_abort_test ${CMAKE_CURRENT_LIST_DIR}/abort_test.cpp)
target_link_libraries(distributed_abort_test PRIVATE tapegrad_distributed)
target_compile_options(distributed_abort_test PRIVATE ${mpi_test_warnings})
tapegrad_add_mpi_test(NAME distributed/abort_on_unwind_np2 NP 2 TRANSPORT shm TIMEOUT 20
                      COMMAND $<TARGET_FILE:distributed_abort_test>)
set_tests_properties(distributed/abort_on_unwind_np2 PROPERTIES PASS_REGULAR_EXPRESSION
                     "an exception is unwinding through the Environment; aborting the launch")

# The Environment's timeout: a rank that returns from main normally while the other waits in a barrier ends
# the launch after 1 s with the watchdog's message (it hung before); ranks that come late within the
# timeout finish normally. The watchdog ends its process without MPI_Abort (no "MPI_ABORT was invoked"):
# called from the watchdog's thread, MPI_Abort made Open MPI's mpiexec segfault or hang in about 1 launch of 12.
add_executable(distributed_timeout_test ${CMAKE_CURRENT_LIST_DIR}/timeout_test.cpp)
target_link_libraries(distributed_timeout_test PRIVATE tapegrad_distributed)
target_compile_options(distributed_timeout_test PRIVATE ${mpi_test_warnings})
tapegrad_add_mpi_test(NAME distributed/timeout_fires_np2 NP 2 TRANSPORT shm TIMEOUT 20
                      COMMAND $<TARGET_FILE:distributed_timeout_test> fires)
set_tests_properties(distributed/timeout_fires_np2 PROPERTIES PASS_REGULAR_EXPRESSION
                     "rank 0 of 2 waited 1 s in MPI_Barrier [(]Communicator::barrier[)] for the other ranks, longer"
                     FAIL_REGULAR_EXPRESSION "MPI_ABORT was invoked")
tapegrad_add_mpi_test(NAME distributed/timeout_not_reached_np2 NP 2 TRANSPORT shm TIMEOUT 40
                      COMMAND $<TARGET_FILE:distributed_timeout_test> late)

add_executable(distributed_single_process_test ${CMAKE_CURRENT_LIST_DIR}/single_process_test.cpp)
target_link_libraries(distributed_single_process_test PRIVATE tapegrad_test_support tapegrad_distributed)
target_compile_options(distributed_single_process_test PRIVATE ${mpi_test_warnings})
if(TAPEGRAD_SANITIZE)   # Open MPI's allocations at exit: see tapegrad_add_mpi_test
  catch_discover_tests(distributed_single_process_test TEST_PREFIX "distributed/" PROPERTIES TIMEOUT 60 LABELS mpi
                       ENVIRONMENT "ASAN_OPTIONS=${TAPEGRAD_MPI_ASAN_OPTIONS}")
else()
  catch_discover_tests(distributed_single_process_test TEST_PREFIX "distributed/" PROPERTIES TIMEOUT 60 LABELS mpi)
endif()

# Without MPI the build must still work: configure (default run) and, opt-in, build with TAPEGRAD_WITH_MPI=OFF.
add_test(NAME distributed/absent_without_mpi
         COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DWORK_DIR=${PROJECT_BINARY_DIR}/test_scratch/without_mpi
                 -DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER} -P ${CMAKE_CURRENT_LIST_DIR}/without_mpi.cmake)
set_tests_properties(distributed/absent_without_mpi PROPERTIES LABELS mpi TIMEOUT 300)
add_test(NAME distributed/builds_without_mpi
         COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DWORK_DIR=${PROJECT_BINARY_DIR}/test_scratch/without_mpi_build
                 -DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER} -DBUILD=ON -P ${CMAKE_CURRENT_LIST_DIR}/without_mpi.cmake
         CONFIGURATIONS mpi-off)
set_tests_properties(distributed/builds_without_mpi PROPERTIES LABELS mpi-off TIMEOUT 3600)
